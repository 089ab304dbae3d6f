// Package funcopt applies functional options, the one option pattern of
// coldstart's packages (as go-containerregistry's remote package has it):
// each package declares
//
//	type Option func(*options) error
//
// sets its defaults in one place, and applies the options given with
// Apply, which stops at the first option that refuses its value. A nil
// option is skipped.
package funcopt

// Apply applies opts to o in order and returns o, or the first error.
func Apply[T any, O ~func(*T) error](o *T, opts []O) (*T, error) {
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}
