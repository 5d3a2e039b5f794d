package firewall

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseNftJSONGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.nft.json")
	if len(files) < 2 {
		t.Fatalf("expected nft fixtures in testdata, found %v", files)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			nt := mustNFT(t, name)
			got, err := json.MarshalIndent(nt, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Fatalf("parse of %s differs from %s (run with -update after checking the change)", name, golden)
			}
		})
	}
}

func TestParseNftLibvirt10(t *testing.T) {
	nt := mustNFT(t, "libvirt10-nat.nft.json")
	tb := nt.Table("ip", "libvirt_network")
	if tb == nil || tb.ManagedBy != "" {
		t.Fatalf("libvirt_network table: %+v", tb)
	}
	fwd := tb.Chain("forward")
	if fwd == nil || fwd.Hook != "forward" || fwd.Type != "filter" || fwd.Prio != 0 || fwd.Policy != "accept" || len(fwd.Rules) != 3 {
		t.Fatalf("forward chain: %+v", fwd)
	}
	nat := tb.Chain("guest_nat")
	if nat.Type != "nat" || nat.Hook != "postrouting" || nat.Prio != 100 {
		t.Fatalf("guest_nat: %+v", nat)
	}
	want := `meta l4proto tcp ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade to :1024-65535`
	if got := nat.Rules[2].Text; got != want {
		t.Fatalf("rule text %q, want %q", got, want)
	}
	if got := tb.Chain("guest_input").Rules[0].Text; got != `oifname "virbr0" ip daddr 192.168.122.0/24 ct state established,related accept` {
		t.Fatalf("guest_input rule text %q", got)
	}
}

// TestParseNftIptablesOwned: nft shows iptables-nft's tables with opaque xt matches; those tables
// are recognised as iptables-nft's.
func TestParseNftIptablesOwned(t *testing.T) {
	nt := mustNFT(t, "libvirt9-default.nft.json")
	for _, tb := range nt.Tables {
		if tb.Family == "ip" && tb.Name == "mangle" && tb.ManagedBy != "iptables-nft" {
			t.Fatalf("ip mangle (holds an xt CHECKSUM target) not recognised as iptables-nft's")
		}
	}
	st := &State{IPTablesNFT: mustIPT(t, "libvirt9-default.rules", "nft"), NFTables: nt}
	st.reconcile()
	for _, tb := range nt.Tables {
		if tb.Family == "ip" && tb.ManagedBy == "" {
			t.Fatalf("table ip %s is iptables-nft's but not marked", tb.Name)
		}
	}
}

func TestParseNftJSONErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", "table ip x {}", "nft -j output"},
		{"rule for unknown chain", `{"nftables":[{"table":{"family":"ip","name":"t"}},{"rule":{"family":"ip","table":"t","chain":"c","handle":1,"expr":[{"accept":null}]}}]}`, "unknown chain"},
		{"bad prio", `{"nftables":[{"chain":{"family":"ip","table":"t","name":"c","type":"filter","hook":"forward","prio":"banana"}}]}`, "priority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNftJSON([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParsePrio(t *testing.T) {
	for in, want := range map[string]int{`0`: 0, `-150`: -150, `"filter"`: 0, `"srcnat"`: 100, `"filter + 10"`: 10, `"mangle - 5"`: -155} {
		got, err := parsePrio(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("parsePrio(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func FuzzParseNftJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.nft.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"nftables":[{"table":{"family":"inet","name":"t"}},{"chain":{"family":"inet","table":"t","name":"c","type":"filter","hook":"forward","prio":0,"policy":"drop"}},{"chain":{"family":"inet","table":"t","name":"d"}},{"rule":{"family":"inet","table":"t","chain":"c","handle":2,"expr":[{"goto":{"target":"d"}}]}},{"rule":{"family":"inet","table":"t","chain":"d","handle":3,"expr":[{"jump":{"target":"c"}}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nt, err := ParseNftJSON(data)
		if err != nil {
			return
		}
		st := &State{NFTables: nt}
		p := Packet{In: "virbr0", Out: "eth0", Src: netip.MustParseAddr("192.168.122.2"),
			Dst: netip.MustParseAddr("198.51.100.10"), Proto: "udp", SPort: 40000, DPort: 53, State: StateNew}
		for _, h := range []Hook{HookForward, HookInput, HookPostrouting} {
			if r := st.Evaluate(h, p); r.Verdict == "" {
				t.Fatalf("empty verdict at %s", h)
			}
		}
	})
}
