package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/drops"
	"github.com/netwatcher/netwatcher/internal/engine"
)

// -e: TCP segments the kernel rejects.
func init() {
	factories = append(factories, func(cfg *config.Config) engine.Concern {
		if !cfg.Err {
			return nil
		}
		return drops.New(cfg)
	})
}
