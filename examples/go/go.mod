module github.com/tandem-ai/tandem/examples/go

go 1.19

require github.com/tandem-ai/tandem/bindings/go v0.0.0

replace github.com/tandem-ai/tandem/bindings/go => ../../bindings/go
