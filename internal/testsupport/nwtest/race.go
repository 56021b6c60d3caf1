//go:build race

package nwtest

const raceEnabled = true
