SHELL := /bin/bash
ENV := source scripts/env.sh &&

.PHONY: bootstrap up test bench soak down image
bootstrap:
	@./scripts/bootstrap.sh

## Starts Redis (if REDIS_URL is unreachable), the planner and 2 workers, runs a sample workload, serves until Ctrl-C.
up: bootstrap
	@$(ENV) node --no-node-snapshot scripts/up.mjs

## Runs every test (CI calls this through .ci/run).
test: bootstrap
	@$(ENV) pnpm run lint
	@$(ENV) pnpm run test

## Builds the container image (Dockerfile) as $(IMAGE): docker where it runs, else buildah.
IMAGE ?= toolplane:dev
image: bootstrap
	@./scripts/image.sh $(IMAGE)

bench: bootstrap
	@$(ENV) node --no-node-snapshot bench/run.mjs

## A mixed load for SOAK_MINUTES (10) with workers killed on the way; checks every call ends right and nothing leaks.
soak: bootstrap
	@$(ENV) node --no-node-snapshot bench/soak.mjs

down:
	@$(ENV) node scripts/down.mjs
