export class UnionView {
  constructor(readonly layers: string[]) {}
}
