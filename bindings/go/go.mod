module github.com/tandem-ai/tandem/bindings/go

go 1.19
