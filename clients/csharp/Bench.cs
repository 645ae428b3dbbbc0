// The C# side of the client-language benchmark (bench/clients-bench.ts): the roles of
// bench/clients-child.ts, with the same output.
//
//   mono Bench.exe sub URL TOPIC N | pub URL TOPIC N SIZE | prop URL KEY COUNT
using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Ezipc;

static class Bench
{
    static void Main(string[] args)
    {
        Run(args).GetAwaiter().GetResult();
        Environment.Exit(0); // not a return from Main: README, "Ending a program"
    }

    static async Task Run(string[] args)
    {
        string role = args[0], url = args[1], name = args[2];
        var options = new ClientOptions { Reconnect = false };
        switch (role)
        {
            case "sub":
            {
                int n = int.Parse(args[3]);
                var client = await Client.ConnectAsync(url, "sub", options);
                var done = new TaskCompletionSource<double>(TaskCreationOptions.RunContinuationsAsynchronously);
                int seen = 0;
                var watch = new Stopwatch();
                await client.SubscribeAsync(name, new SubscribeOptions
                {
                    Handler = m =>
                    {
                        if (seen++ == 0) watch.Start();
                        if (seen == n) done.TrySetResult(watch.Elapsed.TotalSeconds);
                    },
                });
                Console.WriteLine("ready");
                double seconds = await done.Task;
                Console.WriteLine("{\"deliveries\":" + n + ",\"seconds\":" + seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}");
                await client.CloseAsync();
                break;
            }
            case "pub":
            {
                int n = int.Parse(args[3]);
                var payload = new byte[int.Parse(args[4])];
                var client = await Client.ConnectAsync(url, "pub", options);
                for (int i = 0; i < n; i++) client.PublishAndForget(name, payload);
                await client.PublishAsync(name + ".done", "x");
                await client.CloseAsync();
                break;
            }
            case "prop":
            {
                int count = int.Parse(args[3]);
                var writer = await Client.ConnectAsync(url, "writer", options);
                var watcher = await Client.ConnectAsync(url, "watcher", options);
                var w = await writer.AllocateAsync(name, 64, Policy.Request);
                var p = await watcher.WatchAsync(name, Policy.Poll);
                var lat = new double[count];
                var data = new byte[64];
                for (int i = 0; i < count; i++)
                {
                    var seen = p.NextChangeAsync();
                    long t0 = Stopwatch.GetTimestamp();
                    await w.WriteAsync(data);
                    await seen;
                    lat[i] = (Stopwatch.GetTimestamp() - t0) * 1e6 / Stopwatch.Frequency;
                }
                Array.Sort(lat);
                var inv = System.Globalization.CultureInfo.InvariantCulture;
                Console.WriteLine("{\"propP50\":" + lat[count / 2].ToString(inv) + ",\"propP99\":" + lat[Math.Min(count - 1, (int)(count * 0.99))].ToString(inv) + "}");
                await writer.CloseAsync();
                await watcher.CloseAsync();
                break;
            }
            default:
                throw new ArgumentException("unknown role " + role);
        }
    }
}
