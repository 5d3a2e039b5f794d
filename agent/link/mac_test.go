package link

import (
	"errors"
	"strings"
	"testing"

	kvmnetv1 "github.com/kvmnet/kvmnet/proto/kvmnet/v1"
)

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"lower colon", "52:54:00:ab:cd:ef", "52:54:00:ab:cd:ef", true},
		{"upper", "52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef", true},
		{"dashes", "52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef", true},
		{"spaces around", " 52:54:00:ab:cd:ef\n", "52:54:00:ab:cd:ef", true},
		{"empty", "", "", false},
		{"short", "52:54:00:ab:cd", "", false},
		{"eui64", "52:54:00:ab:cd:ef:00:11", "", false},
		{"not hex", "zz:54:00:ab:cd:ef", "", false},
		{"path", "../../etc/passwd", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeMAC(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("NormalizeMAC(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

func TestFindByMAC(t *testing.T) {
	ifaces := []*kvmnetv1.Interface{
		{Name: "enp1s0", Mac: "52:54:00:00:00:01"},
		{Name: "enp2s0", Mac: "52:54:00:00:00:02"},
	}
	tests := []struct {
		name, mac, want string
		err             error
	}{
		{"first", "52:54:00:00:00:01", "enp1s0", nil},
		{"second upper case", "52:54:00:00:00:02", "enp2s0", nil},
		{"unknown", "52:54:00:00:00:03", "", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindByMAC(ifaces, strings.ToUpper(tc.mac))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "enp1s0=52:54:00:00:00:01") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got.Name != tc.want {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
	if _, err := FindByMAC(ifaces, "nonsense"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("invalid MAC: err = %v", err)
	}
}
