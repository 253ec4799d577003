package eventpipe

// ReaderCalls counts the pipe's Consume and Peek calls on its sources.
func (p *Pipe) ReaderCalls() uint64 { return p.readerCalls }

// MergeWants returns how many samples each merge ring's next window peeks.
func (p *Pipe) MergeWants() []int {
	var wants []int
	for _, r := range p.heads {
		wants = append(wants, r.want)
	}
	return wants
}
