package output

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/controller/diagnose"
	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

// goldenReport is the report controller/diagnose's golden test writes (UFW blocking routed traffic,
// a multi-NIC guest, a profile hard-coded to eth0, a guest without a channel): the tables are
// rendered from the same diagnosis the JSON contract is checked on.
func goldenReport(t *testing.T) diagnose.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "diagnose", "testdata", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r diagnose.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), got)
}

func TestReportGolden(t *testing.T) {
	r := goldenReport(t)
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer, Palette) error
	}{
		{"status", func(b *bytes.Buffer, p Palette) error { return WriteStatus(b, r, p, false) }},
		{"status_wide", func(b *bytes.Buffer, p Palette) error { return WriteStatus(b, r, p, true) }},
		{"hostcheck", func(b *bytes.Buffer, p Palette) error { return WriteHostCheck(b, r, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b, NewPalette(false)); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, b.Bytes())
			b.Reset()
			if err := tc.write(&b, NewPalette(true)); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), ansi[StyleError]) {
				t.Error("colour requested but no ANSI red in output")
			}
			// Colour never shifts a column: without the escapes the text is the plain table.
			plain := b.String()
			for _, c := range ansi {
				plain = strings.ReplaceAll(plain, c, "")
			}
			plain = strings.ReplaceAll(plain, ansiReset, "")
			var want bytes.Buffer
			_ = tc.write(&want, NewPalette(false))
			if plain != want.String() {
				t.Errorf("coloured table differs from the plain one beyond its escapes:\n%s", plain)
			}
		})
	}
}

// TestJSONNoHTMLEscape: rule texts keep "->" and "<dhcp>" as they are.
func TestJSONNoHTMLEscape(t *testing.T) {
	b, err := JSON(map[string]string{"rule": "new tcp 192.168.122.0/24 -> uplink", "xml": "<dhcp>&"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"new tcp 192.168.122.0/24 -> uplink"`) || !strings.Contains(string(b), `"<dhcp>&"`) {
		t.Fatalf("HTML-escaped JSON:\n%s", b)
	}
}

// FuzzStatusTable puts arbitrary text in every string of a report (guest text reaches them all):
// neither table ever carries a character a terminal would interpret.
func FuzzStatusTable(f *testing.F) {
	for _, s := range []string{"vm1", "\x1b[2J", "\u202e", "\xff", "\u009b", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := diagnose.Report{
			URI:      s,
			Host:     diagnose.HostReport{Uplink: s, Findings: []diagnose.Finding{{Code: diagnose.Code(s), Severity: diagnose.SeverityError, Subject: s, Summary: s, Fix: s}}, Bridges: []diagnose.BridgeReport{{Name: s, State: s, Addresses: []string{s}, Ports: []string{s}}}},
			Networks: []diagnose.NetworkReport{{Name: s, Forward: s, Bridge: s, Subnet: s, BridgeState: s, Dnsmasq: s, Masquerade: s, Egress: s, EgressRule: s}},
			Guests: []diagnose.GuestReport{{Name: s, State: s, Agent: diagnose.AgentReport{Transport: s},
				NICs:     []diagnose.NICReport{{MAC: "52:54:00:00:00:01", Network: s, Bridge: s, GuestIfname: s, GuestIPv4: []string{s}, LeaseIPv4: s, Vnet: s, IPv6: s, AptIPv4: s, Checks: s}},
				Findings: []diagnose.Finding{{Code: diagnose.Code(s), Severity: diagnose.Severity(s), Subject: s, Summary: s, Fix: s}}}},
		}
		var b bytes.Buffer
		if err := WriteStatus(&b, r, NewPalette(false), true); err != nil {
			t.Fatal(err)
		}
		if err := WriteStatus(&b, r, NewPalette(false), false); err != nil {
			t.Fatal(err)
		}
		if err := WriteHostCheck(&b, r, NewPalette(false)); err != nil {
			t.Fatal(err)
		}
		if u := Unsafe(b.String()); u != "" {
			t.Fatalf("%s in\n%q", u, b.String())
		}
	})
}

// TestStatusFits120: the default table of the golden report (long codes, five NICs) keeps to
// StatusWidth columns; -o wide does not try to.
func TestStatusFits120(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStatus(&b, goldenReport(t), NewPalette(false), false); err != nil {
		t.Fatal(err)
	}
	table := strings.SplitN(b.String(), "\n\n", 2)[0]
	for _, l := range strings.Split(table, "\n") {
		if n := len([]rune(l)); n > StatusWidth {
			t.Errorf("%d columns: %s", n, l)
		}
	}
}

func TestFitCodes(t *testing.T) {
	codes := []string{"guest_no_ipv4", "guest_profile_wrong_interface", "ufw_routed_blocked"}
	for _, tc := range []struct {
		width int
		want  string
	}{
		{100, "guest_no_ipv4,guest_profile_wrong_interface,ufw_routed_blocked"},
		{50, "guest_no_ipv4,guest_profile_wrong_interface +1"},
		{20, "guest_no_ipv4 +2"},
		{12, "guest_no… +2"},
		{0, "guest_no… +2"},
	} {
		if got := fitCodes(codes, tc.width); got != tc.want {
			t.Errorf("fitCodes(%d) = %q, want %q", tc.width, got, tc.want)
		}
	}
}
