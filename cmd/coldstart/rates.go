package main

import "github.com/coldstart-dev/coldstart/optimize/report"

// ratesFlag reads --rates FILE; without it, the model's default rates.
func ratesFlag(name string) (report.Rates, error) {
	if name == "" {
		return report.DefaultRates, nil
	}
	r, err := report.ReadRatesFile(name)
	if err != nil {
		return r, usageErr("--rates: %v", err)
	}
	return r, nil
}
