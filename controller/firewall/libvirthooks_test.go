package firewall

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// flushed is libvirt 9.0's real rule set after `iptables -F` followed by a network restart: the
// chains are refilled but nothing jumps to them.
func flushedAndRefilled(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/libvirt9-default.rules")
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "-A INPUT -j LIBVIRT_") || strings.HasPrefix(l, "-A FORWARD -j LIBVIRT_") ||
			strings.HasPrefix(l, "-A OUTPUT -j LIBVIRT_") || strings.HasPrefix(l, "-A POSTROUTING -j LIBVIRT_") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func TestLibvirtUnhooked(t *testing.T) {
	real, err := os.ReadFile("testdata/libvirt9-default.rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string
		want []string
	}{
		{"libvirt's own rules: all hooked", string(real), nil},
		{"jumps gone", flushedAndRefilled(t), []string{"filter/LIBVIRT_INP", "filter/LIBVIRT_OUT", "filter/LIBVIRT_FWX",
			"filter/LIBVIRT_FWI", "filter/LIBVIRT_FWO", "nat/LIBVIRT_PRT", "mangle/LIBVIRT_PRT"}},
		{"no libvirt chains at all", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipt, err := ParseIptablesSave(tc.text, "nft")
			if err != nil {
				t.Fatal(err)
			}
			s := &State{IPTablesNFT: ipt}
			if got := s.libvirtUnhooked(); !slices.Equal(got, tc.want) {
				t.Fatalf("unhooked = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLibvirtHooksFix(t *testing.T) {
	f, err := LibvirtHooksFix([]string{"filter/LIBVIRT_FWO", "filter/LIBVIRT_FWX", "filter/LIBVIRT_FWI", "nat/LIBVIRT_PRT"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Commands {
		got = append(got, strings.Join(c.Argv, " "))
		if len(c.Check) == 0 || c.Check[3] != "-C" {
			t.Errorf("command %v has no -C check", c.Argv)
		}
	}
	want := []string{
		"iptables -t nat -I POSTROUTING 1 -j LIBVIRT_PRT",
		"iptables -t filter -I FORWARD 1 -j LIBVIRT_FWO",
		"iptables -t filter -I FORWARD 1 -j LIBVIRT_FWI",
		"iptables -t filter -I FORWARD 1 -j LIBVIRT_FWX",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("commands:\n got %q\nwant %q", got, want)
	}
	assertNeverDangerous(t, f)
	for _, bad := range [][]string{{"filter/LIBVIRT_EVIL"}, {}, {"filter/LIBVIRT_FWO; rm"}} {
		if _, err := LibvirtHooksFix(bad, ""); err == nil {
			t.Errorf("LibvirtHooksFix(%q) accepted", bad)
		}
	}
	if _, err := LibvirtHooksFix([]string{"filter/LIBVIRT_FWO"}, "sh"); err == nil {
		t.Error("accepted iptables command sh")
	}
}
