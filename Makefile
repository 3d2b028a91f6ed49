# The two commands: `make demo` and `make test`. Each installs what it needs first.
.PHONY: demo test bootstrap stack-up stack-down

DURATION ?= 60
RATE ?= 300

bootstrap:
	@bash scripts/bootstrap

demo: bootstrap
	.venv/bin/streamrec demo --duration $(DURATION) --rate $(RATE)

test: bootstrap
	bash scripts/test

stack-up: bootstrap
	.venv/bin/streamrec stack up

stack-down:
	.venv/bin/streamrec stack down
