// A request's handle between the HTTP thread that reads its tokens and the scheduler thread that makes
// them (scheduler.h): a queue of tokens and the final result under one mutex.
#include "server/scheduler.h"

namespace groak {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

void ServeJob::cancel() { cancelled_.store(true); }

bool ServeJob::wait(std::vector<TokenOut>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done_ || !pending_.empty(); });
  for (auto& t : pending_) out.push_back(std::move(t));
  pending_.clear();
  return done_;
}

bool ServeJob::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void ServeJob::emit(TokenOut t) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    pending_.push_back(std::move(t));
  }
  cv_.notify_all();
}

void ServeJob::finish(JobResult r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    result_ = std::move(r);
    done_ = true;
  }
  cv_.notify_all();
}

}  // namespace groak
