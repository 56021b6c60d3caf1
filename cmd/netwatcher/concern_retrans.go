package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/engine"
	"github.com/netwatcher/netwatcher/internal/retrans"
)

// -r: retransmitted segments and fast/timeout retransmit episodes.
func init() {
	factories = append(factories, func(cfg *config.Config) engine.Concern {
		if !cfg.Retrans {
			return nil
		}
		return retrans.New(cfg)
	})
}
