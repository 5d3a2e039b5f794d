package sockaccess

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePasswdAndGroup(t *testing.T) {
	acc := testAccounts(t)
	if len(acc.Users) != 6 {
		t.Fatalf("users = %d, want 6 (broken line skipped): %+v", len(acc.Users), acc.Users)
	}
	if u, ok := acc.LookupUser("libvirt-qemu"); !ok || u.UID != 64055 || u.GID != 108 {
		t.Fatalf("libvirt-qemu = %+v %v", u, ok)
	}
	g, ok := acc.LookupGroup("kvm")
	if !ok || g.GID != 107 || !reflect.DeepEqual(g.Members, []string{"alice", "bob", "libvirt-qemu", "eve"}) {
		t.Fatalf("kvm = %+v %v", g, ok)
	}
	if got := acc.membersOf(107); !reflect.DeepEqual(got, []string{"alice", "bob", "dave", "eve", "libvirt-qemu"}) {
		t.Fatalf("membersOf(kvm) = %v (dave has kvm as primary group)", got)
	}
	if acc.UserName(9) != "uid:9" || acc.GroupName(107) != "kvm" {
		t.Fatal("names")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name  string
		parse func(string) error
		in    string
		want  string
	}{
		{"passwd all malformed", func(s string) error { _, err := ParsePasswd(strings.NewReader(s)); return err },
			"x\ny:z\n", "malformed lines 1,2"},
		{"passwd bad uid", func(s string) error { _, err := ParsePasswd(strings.NewReader(s)); return err },
			"a:x:-1:0::/:/bin/sh\n", "malformed lines 1"},
		{"group all malformed", func(s string) error { _, err := ParseGroup(strings.NewReader(s)); return err },
			"kvm:x:abc:\n", "malformed lines 1"},
		{"empty passwd is fine", func(s string) error { _, err := ParsePasswd(strings.NewReader(s)); return err },
			"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(tc.in)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseGroup(f *testing.F) {
	f.Add(testGroup)
	f.Add("kvm:x:107:a,,b,\n::::\n#x\n")
	f.Fuzz(func(t *testing.T, s string) {
		groups, _ := ParseGroup(strings.NewReader(s))
		for _, g := range groups {
			if g.Name == "" {
				t.Fatalf("empty group name from %q", s)
			}
			for _, m := range g.Members {
				if m == "" || strings.Contains(m, ",") {
					t.Fatalf("bad member %q", m)
				}
			}
		}
	})
}
