/**
 * Gathers requests made in the same event-loop turn under one key and hands each group to `flush`
 * once, on `setImmediate`: calls that a worker takes, finishes or announces together cost one Redis
 * round trip and one script run instead of one each (`make bench` counts the commands per call).
 * A lone request waits for no timer, only for the end of the turn it was made in.
 *
 * `flush` answers one outcome per request, in order; a thrown error rejects the whole group.
 */
export class TickBatcher<In, Out> {
  private readonly groups = new Map<string, Array<{ input: In; resolve: (out: Out) => void; reject: (err: unknown) => void }>>();
  private scheduled = false;

  constructor(
    private readonly flush: (key: string, inputs: In[]) => Promise<Out[]>,
    /** Most requests one flush gets; a bigger group is split. */
    private readonly maxBatch = 500,
  ) {}

  add(key: string, input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      let group = this.groups.get(key);
      if (!group) this.groups.set(key, (group = []));
      group.push({ input, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.drain());
      }
    });
  }

  private drain(): void {
    this.scheduled = false;
    const groups = [...this.groups];
    this.groups.clear();
    for (const [key, group] of groups) {
      for (let i = 0; i < group.length; i += this.maxBatch) {
        const part = group.slice(i, i + this.maxBatch);
        this.flush(key, part.map((r) => r.input)).then(
          (outs) => part.forEach((r, j) => r.resolve(outs[j]!)),
          (err: unknown) => part.forEach((r) => r.reject(err)),
        );
      }
    }
  }
}
