// Package remote runs kvmnetctl on another host over OpenSSH: a guest's channel socket lives on its
// own host, so diagnosis must run there. Commands are argument vectors through controller/runner;
// because ssh joins the remote words into one string for the remote user's shell, every word is
// quoted for a POSIX shell here, and the destination is validated so it cannot be taken for an
// option. What comes back is bounded in size before it is parsed.
//
// It owns only building and running the ssh command; rendering stays with the CLI. It must never
// import the CLI or libvirt.
package remote
