# The operator's queue tools (read-only) and the log summary. They share
# qmail-send's recipient classification (rewrite.c) and bounce records
# (dsn.c) so that what they show is what qmail-send does.
PROGS += qmail-qstat qmail-qread
qmail-qstat_SRCS := qmail-send/qmail-qstat.c qmail-send/qtool.c qmail-send/rewrite.c
qmail-qread_SRCS := qmail-send/qmail-qread.c qmail-send/qtool.c qmail-send/rewrite.c qmail-send/dsn.c qmail-send/why.c

# qmail-logsum is a script; it is installed with the programs.
SCRIPTS += qmail-logsum
progs: $(BUILD)/bin/qmail-logsum
$(BUILD)/bin/qmail-logsum: qmail-send/qmail-logsum.sh
	@mkdir -p $(@D)
	cp $< $@ && chmod 0755 $@
