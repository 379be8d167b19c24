#!/bin/sh
# A `command`-harness agent that tries to get secrets out through everything the farm stores:
# the secret it was given ($LEAK), and a harness credential and another WP's secret of the worker
# that it finds in /proc (where the worker's environment is visible).
# Each form goes to stdout (the job log, current_activity), stderr, or a commit message.
set -u
printf 'plain: %s\n' "$LEAK"
printf '%s' "$LEAK" | base64
echo "$LEAK" | base64
printf '%s' "$LEAK" | od -An -tx1 | tr -d ' \n'; echo
printf '%s' "$LEAK" | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F'; echo
printf '%s\n' "$LEAK" | rev
printf '%s' "$LEAK" | od -An -tx1
printf 'wrapped: [%s]\n' "$(printf '%s' "$LEAK" | base64)"
for f in /proc/[0-9]*/environ; do { tr '\0' '\n' < "$f"; } 2>/dev/null; done \
  | sed -n -E 's/^(ANTHROPIC_API_KEY|AGILEPLUS_SECRET_OTHER_WP)=//p' | sort -u | while read -r key; do
    printf 'found a credential: %s\n' "$key"
    printf '%s' "$key" | base64
  done
mkdir -p wp01
echo "work" > wp01/file_1.txt
git add wp01/file_1.txt
git -c user.name=agent -c user.email=agent@localhost commit -q -m "feat(WP01): use token $LEAK"
echo "more" >> wp01/file_1.txt
git add wp01/file_1.txt
git -c user.name=agent -c user.email=agent@localhost commit -q -m "leaked $(printf '%s' "$LEAK" | rev)"
mkdir -p secrets
echo "stolen" > "secrets/$LEAK.txt"
git add secrets
git -c user.name=agent -c user.email=agent@localhost commit -q -m "feat(WP01): keep a copy"
printf 'error: could not authenticate with %s\n' "$LEAK" >&2
# The last line on stdout becomes the job's current activity while the agent keeps running: until
# the test has read it ($RELEASE_FILE exists), $HOLD_SECONDS at most.
printf 'activity: %s\n' "$(printf '%s' "$LEAK" | base64)"
waited=0
while [ ! -e "${RELEASE_FILE:-/nonexistent}" ] && [ "$waited" -lt "$((${HOLD_SECONDS:-4} * 10))" ]; do
  sleep 0.1
  waited=$((waited + 1))
done
