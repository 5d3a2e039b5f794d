package nm

import (
	"strings"
	"testing"
)

// TestNameConflict: only a profile with kvmnet's name and without its marker is a conflict, and the
// reason names the profile, its uuid, the interface and the missing marker.
func TestNameConflict(t *testing.T) {
	cases := []struct {
		name string
		p    Profile
		want []string
	}{
		{"kvmnet's own", Profile{ID: "kvm-dhcp-enp1s0", UUID: "u1", ManagedByKvmnet: true}, nil},
		{"another name", Profile{ID: "Wired connection 1", UUID: "u2"}, nil},
		{"the bare prefix", Profile{ID: "kvm-dhcp-", UUID: "u3"}, nil},
		{"foreign under kvmnet's name", Profile{ID: "kvm-dhcp-enp1s0", UUID: "u4"},
			[]string{`"kvm-dhcp-enp1s0"`, "for enp1s0", "uuid u4", ManagedKey, "does not adopt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := NameConflict(tc.p)
			if (got == "") != (tc.want == nil) {
				t.Fatalf("NameConflict = %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}
