package qga

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// fakeAgent answers commands by their "execute" name; a func answer sees the arguments.
type fakeAgent struct {
	mu      sync.Mutex
	answers map[string]any // string reply, error, or func(args map[string]any) (string, error)
	calls   []string
}

func (f *fakeAgent) QemuAgentCommand(ctx context.Context, domain, command string, timeout time.Duration) (string, error) {
	var req struct {
		Execute   string         `json:"execute"`
		Arguments map[string]any `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(command), &req); err != nil {
		return "", fmt.Errorf("fake: bad command %q: %v", command, err)
	}
	f.mu.Lock()
	f.calls = append(f.calls, req.Execute)
	a, ok := f.answers[req.Execute]
	f.mu.Unlock()
	if !ok {
		return `{"error":{"class":"CommandNotFound","desc":"The command ` + req.Execute + ` has not been found"}}`, nil
	}
	switch v := a.(type) {
	case string:
		return v, nil
	case error:
		return "", v
	case func(map[string]any) (string, error):
		return v(req.Arguments)
	}
	return "", fmt.Errorf("fake: bad answer type %T", a)
}
