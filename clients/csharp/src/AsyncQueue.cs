// An unbounded (or latest-only) queue that async readers wait on: the reader thread puts, user code takes.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Ezipc
{
    sealed class AsyncQueue<T>
    {
        readonly object sync = new object();
        readonly Queue<T> items = new Queue<T>();
        readonly Queue<TaskCompletionSource<T>> waiters = new Queue<TaskCompletionSource<T>>();
        readonly int capacity;
        Exception ended;

        /// <param name="capacity">0: unbounded; n: the oldest items go when more than n wait.</param>
        public AsyncQueue(int capacity = 0)
        {
            this.capacity = capacity;
        }

        public int Count
        {
            get { lock (sync) return items.Count; }
        }

        public void Put(T item)
        {
            TaskCompletionSource<T> w = null;
            lock (sync)
            {
                if (ended != null) return;
                while (waiters.Count > 0 && w == null)
                {
                    var c = waiters.Dequeue();
                    if (!c.Task.IsCompleted) w = c;
                }
                if (w == null)
                {
                    items.Enqueue(item);
                    if (capacity > 0 && items.Count > capacity) items.Dequeue();
                    return;
                }
            }
            w.TrySetResult(item);
        }

        /// <summary>Ends the queue: items already in it are still taken, then takers get <paramref name="error"/>.</summary>
        public void End(Exception error)
        {
            List<TaskCompletionSource<T>> ws;
            lock (sync)
            {
                if (ended != null) return;
                ended = error;
                ws = new List<TaskCompletionSource<T>>(waiters);
                waiters.Clear();
            }
            foreach (var w in ws) w.TrySetException(error);
        }

        /// <summary>Resolves with the next item; rejects once the queue ended and is empty, or on cancellation.</summary>
        public Task<T> TakeAsync(CancellationToken cancel = default(CancellationToken))
        {
            lock (sync)
            {
                if (items.Count > 0) return Task.FromResult(items.Dequeue());
                if (ended != null) return Task.FromException<T>(ended);
                var w = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
                waiters.Enqueue(w);
                if (cancel.CanBeCanceled) cancel.Register(() => w.TrySetCanceled());
                return w.Task;
            }
        }
    }
}
