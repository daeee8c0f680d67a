#!/usr/bin/env bash
# Makes the checkout resolvable as the collection postgres.cluster: prints a collections path
# that holds ansible_collections/postgres/cluster as a link to the checkout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=$REPO_ROOT/.work/collections/ansible_collections/postgres
mkdir -p "$dir"
ln -sfn ../../../.. "$dir/cluster"
echo "$REPO_ROOT/.work/collections"
