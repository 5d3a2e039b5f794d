package hostnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestBridgeNFOffFix(t *testing.T) {
	sys, etc := t.TempDir(), t.TempDir()
	writeFiles(t, sys, map[string]string{"net/bridge/bridge-nf-call-iptables": "1\n", "net/bridge/bridge-nf-call-ip6tables": "1\n",
		"net/bridge/bridge-nf-call-arptables": "1\n"})
	r, err := New(Config{Handle: &netlink.Handle{}, Netns: netns.None(), Sysctl: ProcSysctl{Root: sys}, EtcRoot: etc})
	if err != nil {
		t.Fatal(err)
	}
	fix := r.BridgeNFOffFix()
	if !strings.Contains(fix.String(), "sysctl -w net.bridge.bridge-nf-call-iptables=0") || fix.File != BridgeNFFile {
		t.Fatalf("fix: %s", fix)
	}
	if err := r.ApplyBridgeNFOffFix(fix); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(etc, BridgeNFFile))
	if err != nil || !strings.Contains(string(b), "managed by kvmnet") || !strings.Contains(string(b), "net.bridge.bridge-nf-call-iptables = 0") {
		t.Fatalf("persisted: %q %v", b, err)
	}
	if bnf, err := r.BridgeNetfilter(); err != nil || bnf.CallIPTables || !bnf.CallIP6Tables {
		t.Fatalf("after the fix: %+v %v", bnf, err)
	}
}
