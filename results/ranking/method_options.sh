# The training-method variants the ranking protocols compare, with their --method-opt flags;
# sourced by run.sh and run_v2.sh. PA&DA twice: the paper's version and the official code's.
# A name's method is its first word; "-time" variants train for SPOS's wall time (protocol v2's
# 150-epoch SPOS runs took 503-512 s) instead of its steps; "-sN" variants train N steps with
# their own schedule (the cosine ends at N), where a snapshot of a longer run is still at a
# high learning rate.
declare -A OPTIONS=(
  [spos]=""
  [pada]=""
  [pada-code]="--method-opt path_scores=code --method-opt importance_weighting=false"
  [fewshot]=""
  [gmnas]=""
  [alphanet]=""
  [alphanet-time]="--time-budget 508s"
  [fewshot-time]="--time-budget 508s"
  [gmnas-time]="--time-budget 508s"
  [spos-s3900]="--steps 3900"
)
