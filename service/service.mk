# make run / make stop: the demo instance (service/demo says what it does).
# DEMO, DEMO_PORT and DEMO_BUILD may be given on the command line, e.g.
#   make run DEMO=/tmp/qmail-demo DEMO_PORT=2526
DEMO       ?= $(CURDIR)/var/demo
DEMO_PORT  ?= 2525
DEMO_BUILD ?= build-demo

run:
	@DEMO='$(DEMO)' DEMO_PORT='$(DEMO_PORT)' DEMO_BUILD='$(DEMO_BUILD)' sh service/demo run

stop:
	@DEMO='$(DEMO)' DEMO_PORT='$(DEMO_PORT)' DEMO_BUILD='$(DEMO_BUILD)' sh service/demo stop

.PHONY: run stop
