package compiler

import "slices"

// RunNames returns the names of the recipe's runs, sorted, as written:
// the recipe is loaded but not checked, so shell completion works on a
// recipe that vet would reject.
func RunNames(path string) ([]string, error) {
	c, err := newCompiler(path)
	if err != nil {
		return nil, err
	}
	user, ok := c.load()
	if !ok {
		return nil, c.errs.errs.sortDedup()
	}
	runs := user.LookupPath(fieldPath("runs"))
	if !runs.Exists() {
		return nil, nil
	}
	it, err := runs.Fields()
	if err != nil {
		return nil, err
	}
	var names []string
	for it.Next() {
		names = append(names, it.Selector().Unquoted())
	}
	slices.Sort(names)
	return names, nil
}
