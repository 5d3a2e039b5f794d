// Package atomicfile is the one way kvmnetctl writes a file on the host (sysctl.d and tmpfiles.d
// entries of host fixes, node_exporter's textfile): a temporary file in the target's directory,
// written, given its mode, fsynced, renamed over the target, and the directory fsynced. A reader
// sees the old file or the new one, never a mix, and after a crash or power loss the rename is not
// lost while the data is. It imports nothing of kvmnet.
package atomicfile
