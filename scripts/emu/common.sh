# Sourced by the scripts in scripts/emu: what they share.

# emu_find_bin SCRIPT BINDIR NAME SUBDIR: the path of program NAME, found in BINDIR itself or in
# BINDIR/SUBDIR (BINDIR a build tree); otherwise says what is missing and exits with status 2.
# Used as bin=$(emu_find_bin ...) under set -e, which then stops the caller too.
emu_find_bin() {
  local b
  for b in "$2/$3" "$2/$4/$3"; do
    [ -x "$b" ] && {
      echo "$b"
      return
    }
  done
  echo "$1: $3 not found in $2 (expected $2/$3 or $2/$4/$3)" >&2
  exit 2
}
