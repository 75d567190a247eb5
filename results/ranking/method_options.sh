# The training-method variants the ranking protocols compare, with their --method-opt flags;
# sourced by run.sh and run_v2.sh. PA&DA twice: the paper's version and the official code's.
declare -A OPTIONS=(
  [spos]=""
  [pada]=""
  [pada-code]="--method-opt path_scores=code --method-opt importance_weighting=false"
  [fewshot]=""
  [gmnas]=""
  [alphanet]=""
)
