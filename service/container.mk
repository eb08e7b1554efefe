# The outbound-only container mode (service/container/qmail-container).
#
# make container PREFIX=/opt/qmail SMARTHOST=smtp.example.org:587 \
#   SMARTHOST_USER=app SMARTHOST_PASSWORD_FILE=/run/secrets/smtp \
#   REWRITE_SENDER=noreply@example.org
# checks the settings (a refused one stops here, before anything is
# installed), builds, installs (service/install) and sets the instance up;
# its command is then PREFIX/bin/qmail-container run.
QC := service/container/qmail-container
container: progs
	PREFIX='$(PREFIX)' sh $(QC) check
	PREFIX='$(PREFIX)' BUILD='$(BUILD)' sh service/install
	PREFIX='$(PREFIX)' sh $(QC) setup

# make container-rootfs PREFIX=/opt/qmail: the minimal runtime (what the
# Containerfile's second stage holds) as $(ROOTFS)/ and $(ROOTFS).tar.gz:
# the instance (made by a non-root uid, CONTAINER_UID, group 0), s6,
# busybox for sh, and the shared libraries they load; its size is printed.
# Settings (SMARTHOST...) are given at run time; see README.
CONTAINER_UID ?= 10001
ROOTFS ?= $(BUILD)/container-rootfs
container-rootfs: progs
	PREFIX='$(PREFIX)' BUILD='$(BUILD)' CONTAINER_UID='$(CONTAINER_UID)' ROOTFS='$(ROOTFS)' \
	  sh service/container/rootfs

# make check-container: the root file system, run with unshare and chroot
# as a random non-root uid in its own network namespace
# (tests/container-rootfs.py; about a minute, so not in make check).
check-container: deps
	$(MAKE) BUILD=build-check PREFIX=$(CHECK_PREFIX) progs tests
	BUILD=build-check PREFIX=$(CHECK_PREFIX) tests/container-rootfs.py

.PHONY: container container-rootfs check-container
