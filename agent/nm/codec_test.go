package nm

import (
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestSettingsCodecRoundTrip(t *testing.T) {
	s := Settings{
		"connection": {"id": dbus.MakeVariant("eth0 \x01\"quoted\"\n"), "uuid": dbus.MakeVariant("u-1"),
			"autoconnect": dbus.MakeVariant(false), "timestamp": dbus.MakeVariant(uint64(1700000000))},
		"802-3-ethernet": {"mac-address": dbus.MakeVariant([]byte{0x52, 0x54, 0, 0xab, 0xcd, 0xff})},
		"ipv4": {"method": dbus.MakeVariant("manual"), "dns": dbus.MakeVariant([]uint32{0x0100000a}),
			"address-data": dbus.MakeVariant([]map[string]dbus.Variant{{"address": dbus.MakeVariant("10.0.0.5"), "prefix": dbus.MakeVariant(uint32(24))}}),
			"route-metric": dbus.MakeVariant(int64(-1)), "dns-search": dbus.MakeVariant([]string{})},
		"user": {"data": dbus.MakeVariant(map[string]string{ManagedKey: "kvmnet-agent"})},
	}
	b, err := EncodeSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip changed the settings:\n got %v\nwant %v", got, s)
	}
	if _, err := DecodeSettings(b[:len(b)/2]); err == nil {
		t.Fatal("truncated settings decoded without error")
	}
}
