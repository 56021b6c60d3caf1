package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/engine"
)

// factories of the optional kernel concerns; each concern_*.go file
// registers its own in init(). A factory returns nil when its flags are off.
var factories []func(*config.Config) engine.Concern

// concerns lists the optional kernel concerns the flags ask for.
func concerns(cfg *config.Config) []engine.Concern {
	var cs []engine.Concern
	for _, f := range factories {
		if c := f(cfg); c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}
