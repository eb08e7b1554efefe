# Every tests/unit/t-NAME.c is a unit-test program t-NAME, linked as a
# program is (lib/'s libq.a, $(LIBS) and t-NAME_LIBS) with t-NAME_EXTRA:
# sources from a program folder, set in that folder's *.mk.
UNIT_TESTS := $(notdir $(basename $(wildcard tests/unit/t-*.c)))
TESTPROGS += $(UNIT_TESTS)
$(foreach t,$(UNIT_TESTS),$(eval $(t)_SRCS = tests/unit/$(t).c $$($(t)_EXTRA)))
