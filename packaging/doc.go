// Package packaging holds no Go code of its own: it is kvmnet's packaging (nfpm configs, systemd unit,
// udev rule, default agent config, maintainer scripts, build.sh) plus the tests that build the
// packages and check them the way dpkg, rpm and a Debian root see them. It must never be imported.
package packaging
