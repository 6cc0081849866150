package dynamic

import (
	"context"
	"encoding/json"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
)

// routerFile returns file (routers.safetensors or routers.json) of rs.
func routerFile(rs *kdyn.Routers, file string) ([]byte, error) {
	switch file {
	case kdyn.FileName:
		return kdyn.Encode(rs, nil)
	case ConfigName:
		b, err := json.MarshalIndent(NewConfig(rs), "", "  ")
		return append(b, '\n'), err
	}
	return nil, fmt.Errorf("dynamic: no router file %q", file)
}

// routedInput is input 0 of a call, a model with routers.
func routedInput(c *executor.Call) (*ops.Model, error) {
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	if m.Routers == nil {
		return nil, fmt.Errorf("%s: input 0 is a model without routers", c.Node.Op)
	}
	return m, nil
}

// files writes one router file. Input: the routed model.
type files struct{ ops.RawBytes }

func (files) Version() int { return 1 }

func (files) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p FilesParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := routedInput(c)
	if err != nil {
		return nil, err
	}
	return routerFile(m.Routers, p.File)
}
