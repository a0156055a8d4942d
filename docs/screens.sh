#!/bin/bash
# Screen captures of the chat at three sizes (docs/screens.md): a multi-line paste, a continue,
# a copy, /preset, /prime, ↑ recall, and the Tang model with a title. Needs tmux and ../shared.
# usage (from the repository root, the venv at .venv): bash docs/screens.sh OUTDIR [SIZES="80x24"]
OUT=${1:-screens-out}; mkdir -p "$OUT"
export RNNCHAT_HOME=$(mktemp -d)
RC=$PWD/.venv/bin/rnnchat
PASTE=$(mktemp); head -c 1500 ../shared/corpora/tinyshakespeare.txt > "$PASTE"
cap() { tmux capture-pane -p -t cap > "$OUT/$1.txt"; }
keys() { tmux send-keys -t cap "$@"; }
for size in ${SIZES:-120x35 80x24 60x20}; do
  W=${size%x*}; H=${size#*x}
  tmux kill-session -t cap 2>/dev/null
  tmux new -d -s cap -x $W -y $H "$RC chat shakespeare"
  sleep 6
  cap $size-0-welcome
  keys "/max 60" Enter; sleep 1
  tmux load-buffer "$PASTE"; tmux paste-buffer -p -t cap; sleep 2; cap $size-1-paste
  keys Enter; sleep 6; cap $size-2-reply
  keys C-t; sleep 5; cap $size-3-continue
  keys F2; sleep 1; cap $size-4-copy
  keys "/preset creative" Enter; sleep 2; cap $size-5-preset
  keys "/prime ROMEO:" Enter; sleep 3; cap $size-6-prime
  keys "What news?" Enter; sleep 5; keys Up; sleep 1; cap $size-7-recall
  keys C-q; sleep 1
  tmux kill-session -t cap 2>/dev/null
  tmux new -d -s cap -x $W -y $H "$RC chat tang-poems"
  sleep 6; keys "春望" Enter; sleep 6; cap $size-8-tang
  keys C-q; sleep 1; tmux kill-session -t cap 2>/dev/null
done
ls $OUT | wc -l
