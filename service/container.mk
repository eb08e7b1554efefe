# make container PREFIX=/var/qmail SMARTHOST=smtp.example.org:587 \
#   SMARTHOST_USER=app SMARTHOST_PASSWORD_FILE=/run/secrets/smtp \
#   REWRITE_SENDER=noreply@example.org
# builds, installs (service/install) and sets the instance up for the
# outbound-only container mode (service/container); its command is then
#   s6-svscan $(PREFIX)/service   (or: PREFIX=... sh service/container run)
container: progs
	PREFIX='$(PREFIX)' BUILD='$(BUILD)' sh service/install
	PREFIX='$(PREFIX)' sh service/container setup

.PHONY: container
