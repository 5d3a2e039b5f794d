package nm

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// EncodeSettings returns s in D-Bus wire format (a{sa{sv}}, little endian), exact for every type a
// profile holds (byte arrays, nested dictionaries, strings with any bytes): what a record that must
// outlive the agent process keeps to re-add or restore a profile later. DecodeSettings reverses it.
func EncodeSettings(s Settings) ([]byte, error) {
	msg := &dbus.Message{
		Type: dbus.TypeMethodCall,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/")),
			dbus.FieldMember:    dbus.MakeVariant("Settings"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(map[string]map[string]dbus.Variant(s))),
		},
		Body: []any{map[string]map[string]dbus.Variant(s)},
	}
	var b bytes.Buffer
	if err := msg.EncodeTo(&b, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encode profile settings: %w", err)
	}
	return b.Bytes(), nil
}

// DecodeSettings parses what EncodeSettings returned.
func DecodeSettings(b []byte) (Settings, error) {
	msg, err := dbus.DecodeMessage(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode profile settings: %w", err)
	}
	if len(msg.Body) != 1 {
		return nil, fmt.Errorf("decode profile settings: %d values, want 1", len(msg.Body))
	}
	s, ok := msg.Body[0].(map[string]map[string]dbus.Variant)
	if !ok {
		return nil, fmt.Errorf("decode profile settings: got %T, want a{sa{sv}}", msg.Body[0])
	}
	return Settings(s), nil
}
