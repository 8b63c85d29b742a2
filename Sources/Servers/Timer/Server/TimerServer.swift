// The timer server (the `timer` program): TimerService, storing each client's
// timers in layout 1 (TimerLayouts.swift).

import SSRServer
import TimerCore
import TimerService

@main
struct TimerServer {
    static func main() {
        var server = SSRServer(service: TimerService<TimerClientState>())
        server.run()
    }
}
