package channel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmnet/kvmnet/scripts/lab/testenv/goldenfile"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}

func TestPlanChannelGolden(t *testing.T) {
	cases := []struct {
		name     string
		input    string
		opts     PlanOptions
		kinds    []string
		path     string
		evidence []string
	}{
		{"add to a domain without channel", "nochannel.xml", PlanOptions{AddIfMissing: true},
			[]string{"add-channel"}, "/var/lib/kvmnet/channels/web1.agent.0", []string{"action=add"}},
		{"add channel and vsock", "nochannel.xml", PlanOptions{AddIfMissing: true, Vsock: true},
			[]string{"add-channel", "add-vsock"}, "/var/lib/kvmnet/channels/web1.agent.0", []string{"vsock=add"}},
		{"fix only: nothing to move", "nochannel.xml", PlanOptions{},
			nil, "", []string{"have=none", "action=none"}},
		{"move from libvirt's automatic path", "autopath.xml", PlanOptions{},
			[]string{"move-channel"}, "/var/lib/kvmnet/channels/db1.agent.0", []string{"have=type:unix,path:auto", "action=move"}},
		{"move a source with children; long name uses the uuid; vsock kept", "exposedpath.xml",
			PlanOptions{AddIfMissing: true, Vsock: true, Dir: "/var/lib/kvmnet/channels"},
			[]string{"move-channel"}, "/var/lib/kvmnet/channels/9d3c2b1a-0000-4000-8000-00000000abcd.agent.0",
			[]string{"vsock=present", "have=type:unix,path:/srv/vm/agent.sock"}},
		{"pty channel becomes unix", "ptychannel.xml", PlanOptions{Dir: "/srv/ch"},
			[]string{"move-channel"}, "/srv/ch/pty1.agent.0", []string{"have=type:pty,path:auto"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := readTestdata(t, tc.input)
			ed, err := PlanChannel(in, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, c := range ed.Changes {
				kinds = append(kinds, c.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.kinds, ",") {
				t.Fatalf("changes = %v, want %v", kinds, tc.kinds)
			}
			if ed.Path != tc.path {
				t.Fatalf("path = %q, want %q", ed.Path, tc.path)
			}
			for _, e := range tc.evidence {
				if !strings.Contains(" "+ed.Evidence+" ", " "+e+" ") {
					t.Fatalf("evidence %q lacks %q", ed.Evidence, e)
				}
			}
			diff := Diff(ed.Old, ed.New, "a/"+tc.input, "b/"+tc.input)
			if ed.Changed() != (diff != "") {
				t.Fatalf("Changed()=%v but diff=%q", ed.Changed(), diff)
			}
			if strings.Contains(diff, "s3cret") {
				t.Fatalf("diff shows a password:\n%s", diff)
			}
			golden(t, goldenName(tc.name)+".diff", diff)

			// The result parses, and planning again changes nothing (idempotent).
			again, err := PlanChannel(ed.New, tc.opts)
			if err != nil {
				t.Fatalf("re-plan: %v\n%s", err, ed.New)
			}
			if again.Changed() {
				t.Fatalf("second plan changed again: %+v\n%s", again.Changes, Diff(ed.New, again.New, "1", "2"))
			}
			// Nothing outside the edit moved: every old line is still there, in order.
			if !isSubsequence(splitLines(ed.Old), splitLines(ed.New)) && tc.input != "exposedpath.xml" && tc.input != "ptychannel.xml" {
				t.Fatalf("old lines lost:\n%s", diff)
			}
		})
	}
}

// goldenName turns a case name into a file name: lower-case letters, digits and dashes.
func goldenName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

func isSubsequence(a, b []string) bool {
	j := 0
	for _, l := range b {
		if j < len(a) && a[j] == l {
			j++
		}
	}
	return j == len(a)
}

func TestPlanChannelErrors(t *testing.T) {
	cases := []struct {
		name, xml string
		opts      PlanOptions
		want      string
	}{
		{"connect mode is someone else's server", readTestdata(t, "connectmode.xml"), PlanOptions{}, "connect mode"},
		{"two kvmnet channels", `<domain><name>d</name><uuid>u</uuid><devices>
<channel type='unix'><target type='virtio' name='org.kvmnet.agent.0'/></channel>
<channel type='unix'><target type='virtio' name='org.kvmnet.agent.0'/></channel>
</devices></domain>`, PlanOptions{}, "2 channels named"},
		{"not XML", "<domain><name>x</name>", PlanOptions{}, "domain XML"},
		{"no name", "<domain><devices><x/></devices></domain>", PlanOptions{}, "no <name>"},
		{"no devices", "<domain><name>x</name></domain>", PlanOptions{AddIfMissing: true}, "no <devices>"},
		{"empty self-closing devices", "<domain><name>x</name><devices/></domain>", PlanOptions{AddIfMissing: true}, "self-closing"},
		{"relative dir", "<domain><name>x</name><devices><x/></devices></domain>", PlanOptions{Dir: "ch"}, "absolute"},
		{"dir too long even with uuid", "<domain><name>x</name><uuid>0f0e8a3c-2b7e-4f8e-8d7a-3c1b9e5a6d42</uuid><devices><x/></devices></domain>",
			PlanOptions{AddIfMissing: true, Dir: "/" + strings.Repeat("d", 100)}, "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanChannel(tc.xml, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	cases := []struct{ name, dir, vm, uuid, want string }{
		{"plain", "/var/lib/kvmnet/channels", "web1", "u", "/var/lib/kvmnet/channels/web1.agent.0"},
		{"spaces kept", "/d", "my vm", "u", "/d/my vm.agent.0"},
		{"dots use uuid", "/d", "..", "u-1", "/d/u-1.agent.0"},
		{"too long uses uuid", "/d", strings.Repeat("n", 110), "u-2", "/d/u-2.agent.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SocketPath(tc.dir, tc.vm, tc.uuid); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChannelXMLEscapes(t *testing.T) {
	got := ChannelXML("/d/it's<&>.agent.0")
	if !strings.Contains(got, "path='/d/it&apos;s&lt;&amp;>.agent.0'") {
		t.Fatalf("ChannelXML = %s", got)
	}
}

func TestDiff(t *testing.T) {
	cases := []struct{ name, a, b, want string }{
		{"equal", "x\n", "x\n", ""},
		{"insert middle", "1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nnew\n5\n6\n7\n8\n",
			"--- a\n+++ b\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n"},
		{"replace first", "a\nb\n", "A\nb\n", "--- a\n+++ b\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "x\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ny\n",
			"--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+x\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+y\n"},
		{"secret redacted", "<graphics passwd='pw'/>\n", "<graphics passwd='pw'/>\n<x/>\n",
			"--- a\n+++ b\n@@ -1 +1,2 @@\n <graphics passwd='***'/>\n+<x/>\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.a, tc.b, "a", "b"); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
