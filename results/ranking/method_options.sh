# The training-method variants the ranking protocols compare, with their --method-opt flags;
# sourced by run.sh and run_v2.sh. PA&DA twice: the paper's version and the official code's.
# A name's method is its first word; "-time" variants train for SPOS's wall time (protocol v2's
# 150-epoch SPOS runs took 503-512 s) instead of its steps; "-sN" variants train N steps with
# their own schedule (the cosine ends at N), where a snapshot of a longer run is still at a
# high learning rate. "-paper" variants follow the splitting papers' schedules, scaled so that
# the papers' nominal run is SPOS's 150 epochs (11,700 steps) and each sub-supernet gets its own
# budget after the split (the steps are shared by the sub-supernets, one path a step):
#   Few-Shot NB201: one-shot 600 epochs, then each of 5 sub-supernets 300 epochs -> 11,700 +
#     5 x 5,850 = 40,950 steps, split at 2/7 (the method's default ratio);
#   GM-NAS NB201 RSPS: splits at epochs 20 and 40 of 90, each sub-supernet trains on -> 2,600 +
#     2 x 2,600 + 4 x 6,500 = 33,800 steps, splits at 2,600 and 7,800.
# spos-s40950 is SPOS for Few-Shot's paper-schedule steps: the control at equal steps.
# spos-lr0.1 is SPOS at the learning rate the heuristics ablation chose (results/ranking/heuristics/),
# for its budget curve against spos's.
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
  [spos-s2600]="--steps 2600"
  [spos-s3900]="--steps 3900"
  [spos-s5200]="--steps 5200"
  [fewshot-paper]="--epochs 1000 --steps 40950"
  [spos-s40950]="--epochs 1000 --steps 40950"
  [gmnas-paper]="--epochs 1000 --steps 33800 --method-opt split_at=0.076923,0.230769"
  [spos-lr0.1]="--lr 0.1"
)
