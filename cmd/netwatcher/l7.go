package main

import (
	"github.com/netwatcher/netwatcher/internal/config"
	"github.com/netwatcher/netwatcher/internal/dns"
	"github.com/netwatcher/netwatcher/internal/l7cap"
	"github.com/netwatcher/netwatcher/internal/mysql"
	"github.com/netwatcher/netwatcher/internal/redis"
)

// l7protocols lists the application protocols of a run: one kernel
// capture (internal/l7cap) serves all of them; a protocol is one line
// under its flag.
func l7protocols(cfg *config.Config) []l7cap.Protocol {
	var ps []l7cap.Protocol
	if cfg.DNS {
		ps = append(ps, dns.New(cfg)) // -N: DNS queries/responses, latency, per-process counters
	}
	if cfg.MySQL {
		ps = append(ps, mysql.New(cfg)) // -M: MySQL/MariaDB requests, responses, latency, per-command counters
	}
	if cfg.Redis {
		ps = append(ps, redis.New(cfg)) // -R: Redis requests/replies, latency, per-command summaries
	}
	return ps
}
