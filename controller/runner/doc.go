// Package runner is the one way controller code runs external commands (iptables-save, nft, ufw,
// firewall-cmd, ...): argument vectors only, never a shell string, with errors that name the command
// and carry its stderr.
//
// Exec runs commands for real, optionally inside a network namespace (`ip netns exec NAME`) or inside
// another process's namespaces (`nsenter -t PID ...`), so tests and the lab can read and change a
// namespace's firewall with the same code that reads the host's. Fake answers by argv for unit tests.
//
// It must never import other kvmnet packages: it is a leaf every controller adapter may use.
package runner
