package main

import (
	"log/slog"

	"github.com/kvmnet/kvmnet/agent/config"
	"github.com/kvmnet/kvmnet/agent/service"
)

// newService builds the production service (agent/service).
func newService(version string, cfg config.Config, log *slog.Logger) (Service, error) {
	return service.New(service.Options{Version: version, Config: cfg, Logger: log})
}
