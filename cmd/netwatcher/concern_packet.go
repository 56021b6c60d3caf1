package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/engine"
	"github.com/netwatcher/netwatcher/internal/packet"
)

// Packets are on unless --no-packets (SPEC §2): layer times with -t, payload with -i.
func init() {
	factories = append(factories, func(cfg *config.Config) engine.Concern {
		if cfg.NoPackets {
			return nil
		}
		return packet.New(cfg)
	})
}
