package hostnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvmnet/kvmnet/controller/atomicfile"
	"github.com/kvmnet/kvmnet/controller/snapshot"
)

// BridgeNFFile is where the bridge-nf-call-iptables=0 fix persists (relative to the etc root).
const BridgeNFFile = "/etc/sysctl.d/99-kvmnet-bridge-nf.conf"

const bridgeNFContent = "# managed by kvmnet (kvmnetctl host fix --only bridge_netfilter_drop --bridge-nf-off): bridged guest\n" +
	"# frames bypass iptables/nftables' IP hooks. Applies at boot only when br_netfilter is loaded by then.\n" +
	snapshot.BridgeNFCallIPTables + " = 0\n"

// BridgeNFOffFix is the exact change that stops br_netfilter from handing bridged IPv4 frames to the
// IP hooks, now and at every boot.
type BridgeNFOffFix struct {
	// Command is the live change as a user would type it.
	Command string `json:"command"`
	// File is the persistent file (path as on the host).
	File string `json:"file"`
	// Content is what File will contain.
	Content string `json:"content"`
}

// String is the change as printed before it runs.
func (f BridgeNFOffFix) String() string {
	return fmt.Sprintf("run: %s\nwrite %s:\n%s", f.Command, f.File, indent(f.Content))
}

// BridgeNFOffFix returns the change ApplyBridgeNFOffFix makes (print it first).
func (r *Reader) BridgeNFOffFix() BridgeNFOffFix {
	return BridgeNFOffFix{Command: "sysctl -w " + snapshot.BridgeNFCallIPTables + "=0", File: BridgeNFFile, Content: bridgeNFContent}
}

// ApplyBridgeNFOffFix sets bridge-nf-call-iptables to 0 in the Reader's namespace, writes fix.File
// under the etc root, and reads the value back.
func (r *Reader) ApplyBridgeNFOffFix(fix BridgeNFOffFix) error {
	if err := r.cfg.Sysctl.Write(snapshot.BridgeNFCallIPTables, "0"); err != nil {
		return fmt.Errorf("turn bridge netfilter off: %w", err)
	}
	p := filepath.Join(r.cfg.EtcRoot, fix.File)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("persist %s: %w", snapshot.BridgeNFCallIPTables, err)
	}
	if err := atomicfile.Write(p, []byte(fix.Content), 0o644); err != nil {
		return fmt.Errorf("persist %s in %s: %w", snapshot.BridgeNFCallIPTables, fix.File, err)
	}
	v, err := r.cfg.Sysctl.Read(snapshot.BridgeNFCallIPTables)
	if err != nil {
		return fmt.Errorf("verify %s: %w", snapshot.BridgeNFCallIPTables, err)
	}
	if strings.TrimSpace(v) != "0" {
		return fmt.Errorf("verify: %s is still %s after writing 0 (something sets it back: dockerd does when it starts)", snapshot.BridgeNFCallIPTables, v)
	}
	return nil
}
