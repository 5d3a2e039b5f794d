package firewall

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseIptablesSaveGolden parses every captured or written dump and compares the structure with
// its golden file (go test -run Golden -update rewrites them).
func TestParseIptablesSaveGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.rules")
	if len(files) < 4 {
		t.Fatalf("expected the rule-set fixtures in testdata, found %v", files)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			ipt := mustIPT(t, name, "nft")
			got, err := json.MarshalIndent(ipt, "", "  ")
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

func TestParseRuleFields(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		check func(t *testing.T, r *Rule)
	}{
		{"libvirt fwi", `-A LIBVIRT_FWI -d 192.168.122.0/24 -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
			func(t *testing.T, r *Rule) {
				if r.Dst.Prefix != netip.MustParsePrefix("192.168.122.0/24") || r.Out.Name != "virbr0" ||
					strings.Join(r.CTState.Values, ",") != "RELATED,ESTABLISHED" || r.Target != "ACCEPT" {
					t.Fatalf("%+v", r)
				}
			}},
		{"negations", `-A POSTROUTING -s 192.168.122.0/24 ! -d 192.168.122.0/24 -p tcp -j MASQUERADE --to-ports 1024-65535`,
			func(t *testing.T, r *Rule) {
				if !r.Dst.Neg || r.Src.Neg || r.Proto.Values[0] != "tcp" || r.Target != "MASQUERADE" ||
					strings.Join(r.TargetArgs, " ") != "--to-ports 1024-65535" {
					t.Fatalf("%+v", r)
				}
			}},
		{"ports and comment", `-A ufw-user-input -p tcp -m multiport --dports 80,443,8000:8010 -m comment --comment "web \"srv\"" -j ACCEPT`,
			func(t *testing.T, r *Rule) {
				if len(r.DPort.Ranges) != 3 || r.DPort.Ranges[2] != [2]uint16{8000, 8010} || r.Comment != `web "srv"` {
					t.Fatalf("%+v", r)
				}
			}},
		{"state module and goto", `-A INPUT -m state --state NEW -i eth+ -g CUSTOM`,
			func(t *testing.T, r *Rule) {
				if r.CTState.Values[0] != "NEW" || !r.Goto || r.Target != "CUSTOM" || r.In.Name != "eth+" {
					t.Fatalf("%+v", r)
				}
			}},
		{"unknown module kept", `-A FORWARD -m set --match-set blocked src -j DROP`,
			func(t *testing.T, r *Rule) {
				if len(r.Unknown) != 1 || r.Unknown[0] != "-m set --match-set blocked src" {
					t.Fatalf("unknown = %q", r.Unknown)
				}
			}},
		{"physdev", `-A FORWARD -m physdev ! --physdev-is-bridged --physdev-in vnet+ ! --physdev-out eth0 -j ACCEPT`,
			func(t *testing.T, r *Rule) {
				m := r.Physdev
				if len(r.Unknown) != 0 || m == nil || m.IsBridged == nil || !m.IsBridged.Neg || m.In.Name != "vnet+" || m.In.Neg ||
					!m.Out.Neg || m.Out.Name != "eth0" || m.IsIn != nil {
					t.Fatalf("%+v unknown=%q", m, r.Unknown)
				}
			}},
		{"addrtype", `-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN`,
			func(t *testing.T, r *Rule) {
				if r.DstType == nil || r.DstType.Values[0] != "LOCAL" {
					t.Fatalf("%+v", r)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
				":LIBVIRT_FWI - [0:0]\n:ufw-user-input - [0:0]\n:ufw-not-local - [0:0]\n:CUSTOM - [0:0]\n" + tc.line + "\nCOMMIT\n"
			ipt, err := ParseIptablesSave(text, "nft")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ipt.Tables[0].Chains {
				if len(c.Rules) == 1 {
					if c.Rules[0].Text != tc.line {
						t.Fatalf("Text = %q", c.Rules[0].Text)
					}
					tc.check(t, c.Rules[0])
					return
				}
			}
			t.Fatal("rule not stored")
		})
	}
}

func TestParseIptablesSaveErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"rule outside table", "-A FORWARD -j ACCEPT\n", "outside a table"},
		{"undeclared chain", "*filter\n-A NOPE -j ACCEPT\nCOMMIT\n", "undeclared chain NOPE"},
		{"no commit", "*filter\n:INPUT ACCEPT [0:0]\n", "no COMMIT"},
		{"bad address", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 300.1.1.1 -j DROP\nCOMMIT\n", "-s"},
		{"unterminated quote", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"x -j DROP\nCOMMIT\n", "quote"},
		{"garbage", "*filter\nhello\nCOMMIT\n", "unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIptablesSave(tc.text, "nft")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func FuzzParseIptablesSave(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.rules")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n-A INPUT -j X\n-A X -g X\nCOMMIT\n")
	f.Add("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING ! -s 10.0.0.0/255.0.0.0 -j SNAT --to-source 1.2.3.4\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, text string) {
		ipt, err := ParseIptablesSave(text, "nft")
		if err != nil {
			return
		}
		// Whatever parses must evaluate without panicking or hanging.
		st := &State{IPTablesNFT: ipt}
		p := Packet{In: "virbr0", Out: "eth0", Src: netip.MustParseAddr("192.168.122.2"),
			Dst: netip.MustParseAddr("198.51.100.10"), Proto: "tcp", SPort: 40000, DPort: 80, State: StateNew}
		for _, h := range []Hook{HookForward, HookInput, HookPostrouting} {
			r := st.Evaluate(h, p)
			if r.Verdict == "" {
				t.Fatalf("empty verdict at %s", h)
			}
		}
	})
}
