# make run / make stop: the demo instance (service/demo says what it does).
# DEMO, DEMO_PORT and DEMO_BUILD may be given on the command line, e.g.
#   make run DEMO=/tmp/qmail-demo DEMO_PORT=2526
# DEMO empty: service/demo's default (./var/demo, or /var/tmp/qmail-demo-*
# for a checkout the mail uids cannot reach); `make stop` then also stops
# every instance a `make run DEMO=...` here started.
DEMO       ?=
DEMO_PORT  ?= 2525
DEMO_BUILD ?= build-demo

run:
	@DEMO='$(DEMO)' DEMO_PORT='$(DEMO_PORT)' DEMO_BUILD='$(DEMO_BUILD)' sh service/demo run

stop:
	@DEMO='$(DEMO)' DEMO_PORT='$(DEMO_PORT)' DEMO_BUILD='$(DEMO_BUILD)' sh service/demo stop

.PHONY: run stop
