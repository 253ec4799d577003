package eventpipe

// ReaderCalls counts the pipe's Consume and Peek calls on its sources.
func (p *Pipe) ReaderCalls() uint64 { return p.readerCalls }
