package report

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Budget is a limit on the lazy start estimate on one network.
type Budget struct {
	Network Network
	Seconds float64
}

// BudgetResult says whether the estimate kept within a budget.
type BudgetResult struct {
	Network  string  `json:"network"`
	Budget   float64 `json:"budgetSeconds"`
	Estimate float64 `json:"estimateSeconds"`
	Exceeded bool    `json:"exceeded"`
}

// ErrOverBudget is wrapped by the error CheckBudgets returns when an
// estimate exceeds its budget.
var ErrOverBudget = errors.New("over budget")

// ParseBudget parses NETWORK=SECONDS, where NETWORK is what ParseNetwork
// reads: "edge=2.5", "200Mbit,20ms=3".
func ParseBudget(s string) (Budget, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return Budget{}, fmt.Errorf("budget %q: want NETWORK=SECONDS, such as edge=2.5", s)
	}
	n, err := ParseNetwork(s[:i])
	if err != nil {
		return Budget{}, fmt.Errorf("budget %q: %w", s, err)
	}
	sec, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s[i+1:]), "s"), 64)
	if err != nil || !(sec > 0) {
		return Budget{}, fmt.Errorf("budget %q: want a positive number of seconds after =", s)
	}
	return Budget{Network: n, Seconds: sec}, nil
}

// CheckBudgets returns an error wrapping ErrOverBudget that names every
// budget exceeded, or nil.
func (r *Report) CheckBudgets() error {
	var over []string
	for _, b := range r.Budgets {
		if b.Exceeded {
			over = append(over, fmt.Sprintf("lazy start on %s takes %.2f s, budget %.2f s", b.Network, b.Estimate, b.Budget))
		}
	}
	if len(over) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrOverBudget, strings.Join(over, "; "))
}
