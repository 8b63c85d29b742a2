// Fuzz target `storage-state`: the storage server's SSR records and the queue it
// rebuilds from them after a restart.
//
// The input is the device's capacity in sectors (u64), a count byte, then that
// many clients' (up to eight) `StorageClientState`s, 64 bytes each, as they lie in
// their SSRs (damaged ones whose checksum still verified included), then a script.
// As the restarted server does (StorageService.check, then rebuild), every state
// is judged with `StorageClientState.isConsistent` (one that fails is lost and
// starts fresh), and each surviving outstanding request is put back in the queue
// with its original arrival number. The script then serves the
// queue — each byte takes the most urgent request and completes it (bit 0: ok or
// failed), or, with bit 7 set, accepts a new request from a client that has none —
// and after every step the queue must be intact and every state consistent and in
// step with the queue.

import StorageCore

struct Client {
    var state = StorageClientState.initial
    let id: StorageClientID
}

func checkAll(_ clients: [Client], _ queue: RequestQueue) {
    precondition(queue.isIntact, "the rebuilt queue is damaged")
    var queued = 0
    for client in clients {
        precondition(StorageClientState.isConsistent(client.state), "the server computed a state it rejects")
        let outstanding = client.state.outstanding != nil
        precondition(queue.contains(client.id) == outstanding, "the queue and the SSRs disagree")
        if outstanding { queued += 1 }
    }
    precondition(queue.count == queued, "the queue holds requests of no client")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStorageState(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let capacity = input.integer(UInt64.self)
    let count = Int(input.byte() % 9)
    var clients = (0..<count).map { Client(state: input.value(StorageClientState.self), id: StorageClientID(rawValue: UInt32($0 + 1))) }

    let queue = RequestQueue()
    for index in clients.indices {
        if !StorageClientState.isConsistent(clients[index].state) {
            clients[index].state = .initial
        }
        guard let request = clients[index].state.outstanding else { continue }
        do throws(RequestQueueError) {
            try queue.insert(clients[index].id, priority: request.priority, arrival: clients[index].state.arrival)
        } catch {
            preconditionFailure("a request its SSR's checker accepted does not go back in the queue: \(error)")
        }
    }
    checkAll(clients, queue)

    var steps = 0
    while !input.isAtEnd, steps < 100 {
        steps += 1
        let step = input.byte()
        if step & 0x80 != 0 {
            guard !clients.isEmpty else { continue }
            let index = Int(step & 0x7) % clients.count
            guard clients[index].state.outstanding == nil, capacity >= 1 else { continue }
            let request = StorageRequest(kind: step & 0x8 != 0 ? .write : .read, sector: capacity - 1, count: 1,
                                         priority: (step >> 4) & 7)
            let arrival = queue.takeArrival()
            guard (try? queue.insert(clients[index].id, priority: request.priority, arrival: arrival)) != nil else {
                continue
            }
            clients[index].state.accept(request, id: UInt64(steps), arrival: arrival)
        } else {
            guard let best = queue.popBest() else { continue }
            guard let index = clients.firstIndex(where: { $0.id == best.client }) else {
                preconditionFailure("the queue served a request of no client")
            }
            clients[index].state.complete(succeeded: step & 1 != 0)
        }
        checkAll(clients, queue)
    }
    return 0
}
