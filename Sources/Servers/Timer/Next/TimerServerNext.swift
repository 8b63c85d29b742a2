// The timer server's next version (the `timer-next` program, a `version_of` timer
// in system.toml): the same service storing layout 2, whose commits store only the
// slots in use, and reading layout 1 when it replaces `timer` in a live upgrade
// (`upgrade timer timer-next` in the shell).

import SSRServer
import TimerCore
import TimerService

@main
struct TimerServerNext {
    static func main() {
        var server = SSRServer(service: TimerService<TimerStateV2>())
        server.run()
    }
}
