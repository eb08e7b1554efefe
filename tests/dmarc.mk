# lib/dmarc and lib/psl: what uses them links the resolver (dmarc_eval's
# lookups) and lib/dkim's libraries (its tag-list parser and header
# splitter serve DMARC records and From:). dmarccheck is a test helper
# that evaluates one message from stdin against a DNS server, for
# tests/t-dmarc.py; built outside bin/ so that make install never
# installs it.
DMARC_LIBS := -lresolv -lbearssl -lsodium
t-dmarc_LIBS := $(DMARC_LIBS)
tests: $(BUILD)/testbin/dmarccheck
$(BUILD)/testbin/dmarccheck: $(BUILD)/tests/dmarccheck.o $(BUILD)/libq.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DMARC_LIBS) $(LIBS)
