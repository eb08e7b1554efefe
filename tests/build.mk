# Every tests/unit/t-NAME.c is a unit-test program t-NAME, linked with lib/
# and with t-NAME_EXTRA (sources from a program folder, set in its build.mk).
UNIT_TESTS := $(notdir $(basename $(wildcard tests/unit/t-*.c)))
TESTPROGS += $(UNIT_TESTS)
$(foreach t,$(UNIT_TESTS),$(eval $(t)_SRCS = tests/unit/$(t).c $$($(t)_EXTRA)))
